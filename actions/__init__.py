"""The action server's actions, split by domain.

Nothing is imported here: rasa-sdk imports every module of the package when it registers it
(``ActionExecutor.register_package``), and the desk, which uses the policy and formatting modules, does
not pay for loading the action modules and Rasa with them.
"""
