from mamc.cli import main

raise SystemExit(main())
