"""Draft breach notices (现场监督检查违约通知单) from the evidence in the warehouse."""
