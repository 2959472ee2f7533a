"""gac: Generative Actor Critic, offline and offline-to-online RL by generative modelling."""

__version__ = "0.1.0"
