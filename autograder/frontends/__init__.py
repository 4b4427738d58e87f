"""What users run and read: the command line, the terminal table, the HTML report, the CI formats, watch
mode and the class report. Front ends only render a `GradeResult`; scoring lives in `core.result`."""
