"""The shop assistant's own code that runs beside Rasa: settings, launcher, NLU components."""
