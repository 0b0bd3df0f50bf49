"""``faena demo``: a realistic ETL and data-quality load on the embedded SQLite broker."""
