pytest_plugins = ["darts.net.testing", "darts.sandbox.testing"]
