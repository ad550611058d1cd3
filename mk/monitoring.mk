# Monitoring: Prometheus config, alert rules, Grafana dashboards (issue #6). Owner: monitoring area.
# The proof against a real Prometheus, gateway, broker and node_exporter is a pytest suite
# (tests/monitoring/, run by test-python); this target runs the promtool checks.

MON_RULES := roles/monitoring/files/rules
MON_RULE_TESTS := tests/monitoring/promtool
MON_TMP := $(ROOT)/.cache/monitoring

TEST_TARGETS += monitoring-check

.PHONY: monitoring-check dashboards prometheus-config

monitoring-check: $(SETUP_STAMP) ## promtool: check rules, unit-test alerts, check the role's rendered config; dashboards fresh
	promtool check rules $(MON_RULES)/*.rules.yml
	promtool test rules $(MON_RULE_TESTS)/*.test.yml
	@mkdir -p $(MON_TMP)
	$(PY) -m tests.monitoring.render --rules-dir $(ROOT)/$(MON_RULES) > $(MON_TMP)/prometheus.yml
	promtool check config $(MON_TMP)/prometheus.yml
	$(PY) dashboards/build.py --check

dashboards: $(SETUP_STAMP) ## Re-render dashboards/json/*.json from dashboards/panels.py
	$(PY) dashboards/build.py

prometheus-config: $(SETUP_STAMP) ## Print the role's prometheus.yml rendered for a sample inventory
	@$(PY) -m tests.monitoring.render
