"""The queue: listing, runners, retries."""
