"""hotline.agent_desktop: the agents' REST API (app.make_app), talking to services through ports."""
