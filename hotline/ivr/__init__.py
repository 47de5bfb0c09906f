"""hotline.ivr."""
