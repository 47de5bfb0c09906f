"""hotline.asr."""
