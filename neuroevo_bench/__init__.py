"""neuroevo_bench: a fair, frame-budgeted benchmark of neuroevolution against policy-gradient RL."""

__version__ = "0.1.0"
