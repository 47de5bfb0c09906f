"""hotline.core: shared vocabulary (standard library only)."""
