from spooled.cli import main

raise SystemExit(main())
