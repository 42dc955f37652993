"""The analysis package stays light: no torch or transformers behind `import magiclib.analysis`."""

import subprocess
import sys


def test_importing_the_analysis_pulls_in_no_deep_learning_stack():
    code = "import sys, magiclib.analysis; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
