"""hotline.runtime."""
