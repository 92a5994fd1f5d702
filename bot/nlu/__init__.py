"""Chinese NLU: text normalisation, deterministic entity patterns and their Rasa components."""
