from gfocal.cli.main import main

raise SystemExit(main())
