from bench._main import main

raise SystemExit(main())
