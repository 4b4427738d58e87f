"""The grading itself, with no process boundary and no front end: exercises and cases as data, the one
result and its scoring, comparison, diagnosis, and the pipeline that runs them."""
