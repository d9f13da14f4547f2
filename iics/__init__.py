"""IICS: Intra-Inter Camera Similarity for unsupervised person re-identification."""

__version__ = "0.1.0"
