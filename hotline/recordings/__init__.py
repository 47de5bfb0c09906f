"""hotline.recordings."""
