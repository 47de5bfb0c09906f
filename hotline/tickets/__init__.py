"""hotline.tickets."""
