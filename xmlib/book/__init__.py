"""Book tooling: execute the text notebooks with papermill and check the rendered HTML."""
