"""Segmenting an image in memory: overlap-tile prediction on the host or the device, job sizes, memory checks."""
