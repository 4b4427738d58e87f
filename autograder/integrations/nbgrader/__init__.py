"""nbgrader: the preprocessor that grades outside the kernel (`preprocessor`) and the course tools
(`tools`)."""
