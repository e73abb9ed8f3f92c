pytest_plugins = ["darts.net.testing"]
