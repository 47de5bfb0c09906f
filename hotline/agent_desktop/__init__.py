"""hotline.agent_desktop."""
