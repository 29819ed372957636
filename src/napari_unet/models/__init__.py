"""The U-Net and what makes it a usable model: geometry, metadata, model files, the starting model, fused inference."""
