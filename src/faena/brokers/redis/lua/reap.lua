-- reap: expire every lease that ran out. Reply (JSON): the changed records.
absorb()
local reaped = expire_all()
flush()
return cjson.encode(reaped)
