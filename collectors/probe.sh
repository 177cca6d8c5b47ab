echo probe
