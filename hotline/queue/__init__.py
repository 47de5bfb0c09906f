"""hotline.queue."""
