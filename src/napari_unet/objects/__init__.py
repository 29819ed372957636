"""From class probabilities to classes and to objects (one id per object), and their quality against the truth."""
