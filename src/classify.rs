//! Classification: which document (推荐表, 统计表, 总结报告, photo…) and which
//! form (electronic, scan, media) a file is.
