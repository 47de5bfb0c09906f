"""hotline.sip."""
