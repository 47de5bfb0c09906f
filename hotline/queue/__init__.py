"""hotline.queue: the Redis adapter: ACD queue (acd.RedisCallQueue) and bus (bus.RedisEventBus).

Key names are spelled only in keys.py; multi-key changes are Lua scripts in lua/.
"""
