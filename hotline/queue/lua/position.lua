-- ARGV: call_id. The 1-based position of a waiting call, 0 while offered, -1 if not queued.
return position(ARGV[1]) or -1
