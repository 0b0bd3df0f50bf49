-- finish: ARGV[3] = n, then 11 arguments per outcome (see finish_one). Reply: 1/0 per outcome.
return finish_from(3)
