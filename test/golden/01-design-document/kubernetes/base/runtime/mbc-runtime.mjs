// the bundled runtime stands here
