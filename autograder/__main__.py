from autograder.frontends.cli import run

run()
