"""Authenticators: the server side of SMTP AUTH, one module per Exim driver."""
