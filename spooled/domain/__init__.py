"""Pure domain: job states and their transitions, errors, input models. No I/O here."""
