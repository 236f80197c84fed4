"""TLS through pyOpenSSL (the standard library's ssl module cannot staple OCSP)."""
