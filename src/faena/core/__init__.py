"""Pure core of faena: no I/O, no SQL, no sockets. Everything else imports this."""
