"""Static facts of the synthetic district: regions, departments, diagnoses, catalogue and charge pairs.

Everything here is plain data; the generator draws from it. Codes imitate the national platform's
formats closely enough for the loaders and rules, without claiming to be real catalogue entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REGIONS = [
    "文化路街道",
    "海滨路街道",
    "北环路街道",
    "建设大街街道",
    "河东街道",
    "西港路街道",
    "白塔岭街道",
    "东环路街道",
]
DISTRICT_CODE = "130302"

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉")


@dataclass(frozen=True)
class Item:
    codg: str
    name: str
    list_type: str  # drug / service / material
    chrgitm_type: str
    lv: str
    pric: float
    uplmt: float | None = None
    gend: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    max_cnt_day: float | None = None
    max_prd_days: int | None = None
    max_cnt_period: int | None = None
    period_days: int | None = None
    prd_days: int | None = None  # typical days of supply per unit for drugs


_ITEMS = [
    # services
    Item("001102000010000", "普通门诊诊察费", "service", "02", "01", 10, 12, max_cnt_day=1),
    Item("001103000010000", "急诊诊察费", "service", "02", "01", 15, 18, max_cnt_day=1),
    Item("001101000010000", "一般诊疗费", "service", "12", "01", 10, 10, max_cnt_day=1),
    Item("001104000010000", "住院诊察费", "service", "02", "01", 20, 25, max_cnt_day=1),
    Item("001105000010000", "床位费(三人间)", "service", "01", "01", 40, 50, max_cnt_day=1),
    Item("001106000010000", "二级护理", "service", "07", "01", 30, 35, max_cnt_day=1),
    Item("003101000010000", "血细胞分析(五分类)", "service", "04", "01", 25, 30, max_cnt_day=2),
    Item("003102000010000", "血红蛋白测定", "service", "04", "01", 5, 6),
    Item("003103000010000", "糖化血红蛋白测定", "service", "04", "02", 60, 70, max_cnt_period=1, period_days=15),
    Item("003104000010000", "肝功能检查", "service", "04", "01", 80, 90),
    Item("003105000010000", "肾功能检查", "service", "04", "01", 45, 50),
    Item("003106000010000", "前列腺特异性抗原测定", "service", "04", "02", 70, 80, gend="1"),
    Item("003107000010000", "宫颈液基细胞学检查", "service", "04", "02", 150, 160, gend="2"),
    Item("003108000010000", "B超常规检查", "service", "03", "01", 80, 100),
    Item("003109000010000", "CT平扫", "service", "03", "01", 300, 350),
    Item("003110000010000", "常规心电图", "service", "03", "01", 25, 30),
    Item("003111000010000", "心电监测", "service", "03", "01", 8, 10),
    Item("003112000010000", "血氧饱和度监测", "service", "03", "01", 5, 6),
    Item("003113000010000", "骨密度测定", "service", "03", "02", 100, 120, age_min=40),
    Item("003201000010000", "静脉输液(第一组)", "service", "05", "01", 12, 15, max_cnt_day=2),
    Item("003202000010000", "静脉注射", "service", "05", "01", 6, 8),
    Item("003203000010000", "针刺治疗", "service", "05", "02", 30, 35, max_cnt_day=1),
    Item("003204000010000", "推拿治疗", "service", "05", "02", 40, 45, max_cnt_day=2),
    Item("003205000010000", "小儿推拿", "service", "05", "02", 35, 40, age_max=14, max_cnt_day=1),
    Item("003206000010000", "雾化吸入", "service", "05", "01", 15, 18, max_cnt_day=3),
    Item("003301000010000", "阑尾切除术", "service", "06", "01", 1200, 1400),
    Item("003302000010000", "腹腔镜下胆囊切除术", "service", "06", "01", 2500, 2800),
    Item("003303000010000", "子宫下段剖宫产术", "service", "06", "01", 1800, 2000, gend="2"),
    Item("003304000010000", "桡骨骨折切开复位内固定术", "service", "06", "01", 2000, 2300),
    Item("003305000010000", "全身麻醉", "service", "06", "01", 600, 700),
    Item("003306000010000", "气管插管术", "service", "06", "01", 100, 120),
    # materials
    Item("C01010100001", "一次性使用输液器", "material", "08", "02", 3, 4),
    Item("C01010100002", "一次性静脉留置针", "material", "08", "02", 25, 30),
    Item("C02010100001", "可吸收缝合线", "material", "08", "02", 50, 60),
    Item("C03010100001", "接骨板及螺钉", "material", "08", "02", 3000, 3500),
    # drugs (pric per box; prd_days = days one box lasts)
    Item("XA10BAA001", "盐酸二甲双胍片", "drug", "09", "01", 15, 18, max_prd_days=30, prd_days=15),
    Item("XC09CAA001", "缬沙坦胶囊", "drug", "09", "01", 30, 35, max_prd_days=30, prd_days=14),
    Item("XC08CAA001", "苯磺酸氨氯地平片", "drug", "09", "01", 20, 24, max_prd_days=30, prd_days=14),
    Item("XC10AAA001", "阿托伐他汀钙片", "drug", "09", "02", 35, 40, max_prd_days=30, prd_days=14),
    Item("XB01ACA001", "硫酸氢氯吡格雷片", "drug", "09", "02", 60, 70, max_prd_days=30, prd_days=14),
    Item("XA10AEA001", "甘精胰岛素注射液", "drug", "09", "02", 180, 200, max_prd_days=30, prd_days=15),
    Item("XJ01CAA001", "阿莫西林胶囊", "drug", "09", "01", 12, 15, max_prd_days=7, prd_days=3),
    Item("XJ01DCA001", "头孢呋辛酯片", "drug", "09", "01", 28, 32, max_prd_days=7, prd_days=3),
    Item("XR05CBA001", "盐酸氨溴索口服溶液", "drug", "09", "01", 18, 22, max_prd_days=7, prd_days=5),
    Item("XN02BEA001", "布洛芬缓释胶囊", "drug", "09", "01", 16, 20, max_prd_days=7, prd_days=5),
    Item("XA02BCA001", "奥美拉唑肠溶胶囊", "drug", "09", "01", 25, 30, max_prd_days=14, prd_days=7),
    Item("XR06AXA001", "小儿氨酚黄那敏颗粒", "drug", "09", "02", 15, 18, age_max=14, max_prd_days=7, prd_days=3),
    Item("XG03CAA001", "戊酸雌二醇片", "drug", "09", "02", 40, 45, gend="2", max_prd_days=30, prd_days=21),
    Item("XG04CAA001", "盐酸坦索罗辛缓释胶囊", "drug", "09", "02", 45, 50, gend="1", max_prd_days=30, prd_days=10),
    Item("XB05BBA001", "氯化钠注射液", "drug", "09", "01", 5, 6),
    Item("XJ01DDA001", "注射用头孢曲松钠", "drug", "09", "01", 35, 40),
    Item("ZA01AAA001", "连花清瘟胶囊", "drug", "11", "02", 28, 32, max_prd_days=7, prd_days=4),
    Item("ZA04BAA001", "复方丹参滴丸", "drug", "11", "02", 30, 35, max_prd_days=30, prd_days=10),
    Item("ZA06AAA001", "颈复康颗粒", "drug", "11", "02", 38, 42, max_prd_days=14, prd_days=5),
    Item("XM01AXA001", "玻璃酸钠注射液", "drug", "09", "03", 260, None),
]
ITEMS: dict[str, Item] = {i.codg: i for i in _ITEMS}


def item(name: str) -> Item:
    """Look an item up by its (unique) name."""
    for it in _ITEMS:
        if it.name == name:
            return it
    raise KeyError(name)


# main item includes the sub item: billing both inside the window is a duplicate charge
ITEM_PAIRS = [
    ("血细胞分析(五分类)", "血红蛋白测定", "same_day", "血细胞分析已含血红蛋白测定"),
    ("静脉输液(第一组)", "静脉注射", "same_hour", "静脉输液已含静脉注射"),
    ("心电监测", "血氧饱和度监测", "same_hour", "心电监测已含血氧饱和度监测"),
    ("全身麻醉", "气管插管术", "same_visit", "全身麻醉已含气管插管术"),
]


@dataclass(frozen=True)
class Diagnosis:
    code: str
    name: str
    dept: str
    gend: str | None = None
    age_min: int = 0
    age_max: int = 130
    chronic: str | None = None  # condition name if a chronic-illness outpatient diagnosis
    outpatient: list[tuple[str, float, int, int]] = field(default_factory=list)  # (item, prob, cnt lo, hi)
    inpatient_daily: list[str] = field(default_factory=list)
    inpatient_once: list[str] = field(default_factory=list)
    surgery: list[str] = field(default_factory=list)
    los: tuple[int, int] = (0, 0)  # inpatient length of stay range; (0, 0) = never admitted


DEPARTMENTS = {
    "A03": "内科",
    "A04": "外科",
    "A05": "妇产科",
    "A07": "儿科",
    "A50": "中医科",
    "A20": "急诊医学科",
}

_INFUSION = ["氯化钠注射液", "注射用头孢曲松钠", "静脉输液(第一组)", "一次性使用输液器"]

DIAGNOSES = [
    Diagnosis(
        "I10.x00",
        "原发性高血压",
        "A03",
        age_min=35,
        chronic="高血压",
        outpatient=[
            ("苯磺酸氨氯地平片", 0.8, 1, 2),
            ("缬沙坦胶囊", 0.5, 1, 2),
            ("常规心电图", 0.3, 1, 1),
            ("肾功能检查", 0.15, 1, 1),
        ],
        inpatient_daily=["心电监测"],
        inpatient_once=["血细胞分析(五分类)", "肾功能检查", "常规心电图"],
        los=(5, 10),
    ),
    Diagnosis(
        "E11.900",
        "2型糖尿病",
        "A03",
        age_min=30,
        chronic="糖尿病",
        outpatient=[
            ("盐酸二甲双胍片", 0.8, 1, 2),
            ("甘精胰岛素注射液", 0.2, 1, 1),
            ("糖化血红蛋白测定", 0.06, 1, 1),
            ("肝功能检查", 0.1, 1, 1),
        ],
        inpatient_daily=["甘精胰岛素注射液"],
        inpatient_once=["糖化血红蛋白测定", "肝功能检查", "肾功能检查"],
        los=(6, 12),
    ),
    Diagnosis(
        "J06.900",
        "急性上呼吸道感染",
        "A03",
        outpatient=[
            ("阿莫西林胶囊", 0.5, 1, 2),
            ("连花清瘟胶囊", 0.4, 1, 2),
            ("布洛芬缓释胶囊", 0.3, 1, 1),
            ("血细胞分析(五分类)", 0.5, 1, 1),
        ],
    ),
    Diagnosis("K29.700", "胃炎", "A03", outpatient=[("奥美拉唑肠溶胶囊", 0.9, 1, 2), ("B超常规检查", 0.2, 1, 1)]),
    Diagnosis(
        "I25.100",
        "冠状动脉粥样硬化性心脏病",
        "A03",
        age_min=45,
        chronic="冠心病",
        outpatient=[
            ("硫酸氢氯吡格雷片", 0.7, 1, 2),
            ("阿托伐他汀钙片", 0.7, 1, 2),
            ("复方丹参滴丸", 0.4, 1, 2),
            ("常规心电图", 0.5, 1, 1),
        ],
        inpatient_daily=["心电监测", *_INFUSION],
        inpatient_once=["血细胞分析(五分类)", "CT平扫", "肝功能检查"],
        los=(6, 12),
    ),
    Diagnosis(
        "K35.800",
        "急性阑尾炎",
        "A04",
        age_min=6,
        outpatient=[("血细胞分析(五分类)", 0.9, 1, 1), ("B超常规检查", 0.8, 1, 1)],
        inpatient_daily=_INFUSION,
        inpatient_once=["血细胞分析(五分类)", "B超常规检查", "可吸收缝合线"],
        surgery=["阑尾切除术", "全身麻醉"],
        los=(4, 8),
    ),
    Diagnosis(
        "K80.200",
        "胆囊结石",
        "A04",
        age_min=25,
        outpatient=[("B超常规检查", 0.9, 1, 1), ("肝功能检查", 0.5, 1, 1)],
        inpatient_daily=_INFUSION,
        inpatient_once=["血细胞分析(五分类)", "CT平扫", "肝功能检查"],
        surgery=["腹腔镜下胆囊切除术", "全身麻醉"],
        los=(5, 9),
    ),
    Diagnosis(
        "S52.500",
        "桡骨下端骨折",
        "A04",
        outpatient=[("CT平扫", 0.6, 1, 1), ("布洛芬缓释胶囊", 0.6, 1, 1)],
        inpatient_daily=["布洛芬缓释胶囊"],
        inpatient_once=["CT平扫", "血细胞分析(五分类)", "接骨板及螺钉"],
        surgery=["桡骨骨折切开复位内固定术", "全身麻醉"],
        los=(6, 12),
    ),
    Diagnosis(
        "N40.x00",
        "前列腺增生",
        "A04",
        gend="1",
        age_min=45,
        chronic="前列腺增生",
        outpatient=[
            ("盐酸坦索罗辛缓释胶囊", 0.9, 1, 2),
            ("前列腺特异性抗原测定", 0.3, 1, 1),
            ("B超常规检查", 0.3, 1, 1),
        ],
    ),
    Diagnosis(
        "N76.000",
        "急性阴道炎",
        "A05",
        gend="2",
        age_min=16,
        outpatient=[("宫颈液基细胞学检查", 0.3, 1, 1), ("B超常规检查", 0.3, 1, 1)],
    ),
    Diagnosis(
        "N95.100",
        "绝经期综合征",
        "A05",
        gend="2",
        age_min=42,
        age_max=65,
        outpatient=[("戊酸雌二醇片", 0.8, 1, 2), ("骨密度测定", 0.3, 1, 1)],
    ),
    Diagnosis(
        "O82.000",
        "经剖宫产术单胎分娩",
        "A05",
        gend="2",
        age_min=20,
        age_max=45,
        outpatient=[("B超常规检查", 0.9, 1, 1)],
        inpatient_daily=_INFUSION,
        inpatient_once=["血细胞分析(五分类)", "B超常规检查", "可吸收缝合线"],
        surgery=["子宫下段剖宫产术", "全身麻醉"],
        los=(4, 7),
    ),
    Diagnosis(
        "J20.900",
        "急性支气管炎",
        "A07",
        age_max=14,
        outpatient=[
            ("小儿氨酚黄那敏颗粒", 0.7, 1, 2),
            ("盐酸氨溴索口服溶液", 0.6, 1, 1),
            ("雾化吸入", 0.4, 1, 2),
            ("小儿推拿", 0.15, 1, 1),
        ],
    ),
    Diagnosis(
        "J18.900",
        "肺炎",
        "A07",
        age_max=14,
        outpatient=[("血细胞分析(五分类)", 0.9, 1, 1), ("头孢呋辛酯片", 0.7, 1, 2)],
        inpatient_daily=["雾化吸入", *_INFUSION],
        inpatient_once=["血细胞分析(五分类)", "CT平扫"],
        los=(5, 9),
    ),
    Diagnosis(
        "M54.500",
        "腰痛",
        "A50",
        age_min=20,
        outpatient=[("针刺治疗", 0.6, 1, 1), ("推拿治疗", 0.5, 1, 1), ("布洛芬缓释胶囊", 0.3, 1, 1)],
    ),
    Diagnosis(
        "M47.800",
        "颈椎病",
        "A50",
        age_min=30,
        outpatient=[("颈复康颗粒", 0.6, 1, 2), ("推拿治疗", 0.5, 1, 1), ("骨密度测定", 0.1, 1, 1)],
    ),
]

# departments each hospital level runs
LEVEL_DEPTS = {
    "3": ["A03", "A04", "A05", "A07", "A50", "A20"],
    "2": ["A03", "A04", "A05", "A07", "A50"],
    "1": ["A03", "A50", "A07"],
}

# the chronic conditions and the drug a patient refills at pharmacies
CHRONIC_DRUGS = {
    "高血压": "苯磺酸氨氯地平片",
    "糖尿病": "盐酸二甲双胍片",
    "冠心病": "硫酸氢氯吡格雷片",
    "前列腺增生": "盐酸坦索罗辛缓释胶囊",
}
OTC_DRUGS = ["阿莫西林胶囊", "连花清瘟胶囊", "布洛芬缓释胶囊", "盐酸氨溴索口服溶液", "奥美拉唑肠溶胶囊", "颈复康颗粒"]
