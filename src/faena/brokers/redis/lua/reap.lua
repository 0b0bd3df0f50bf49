-- reap: expire every lease that ran out. Reply: the changed records.
return expire_all()
