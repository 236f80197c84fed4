from pyxim.cli import main

raise SystemExit(main())
