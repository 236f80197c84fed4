"""The spool: messages on disk in Exim's own format (input/ID-H and input/ID-D)."""
