-- finish: ARGV[3] = n, then 11 arguments per outcome (see finish_one). Reply: 1/0 per outcome.
absorb()
local done = finish_from(3)
flush()
return done
