"""layercake: build Docker images and run them as Linux containers, daemonless."""
