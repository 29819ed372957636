"""Training from sparse annotations: settings, data, augmentation, loss, the loop, validation, previews, corrections."""
