from tests.embedded_var import embedded_var_dir  # noqa: F401 - a fixture these tests share
