"""``wfkit test``: suite files and their cases (models), mocked tools, shell and clock (mocks),
expectations (expect), running the cases (runner), and coverage, JUnit and LCOV (reports)."""
