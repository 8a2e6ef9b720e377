"""Data: datasets (Fashion-MNIST, tfds), the sample store, input preprocessing, augmentations."""

from mll_jax.data.datasets import Dataset, catalog, fashion_mnist, load

__all__ = ["Dataset", "catalog", "fashion_mnist", "load"]
